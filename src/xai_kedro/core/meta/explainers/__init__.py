"""Explainer comparison: which explainer is most faithful on this model (the leaderboard), and
whose XAI profile predicts robustness best."""
