"""Gold layer, one sub-package per question: `stats` (association, bootstrap, risk-coverage),
`prediction` (per-sample meta-learners), `adapters` (per-adapter accuracy estimation and
selection), `explainers` (explainer comparison) and `report` (report, findings, figures);
`gold` builds the tables and `tables` names them.

Pure pandas / numpy / scipy / scikit-learn / xgboost / matplotlib (no kedro, no pyspark).
"""
