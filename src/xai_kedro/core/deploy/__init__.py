"""The answer taken out of a run: the selected adapter and its failure predictor as one servable
model (a bundle of safetensors + JSON, an MLflow pyfunc logged as code: nothing is pickled).

`choice` picks the adapter and the predictor, `predictor` writes the predictor as JSON, `bundle`
writes and reads the model directory, `scoring` scores images with it, `model` is the MLflow
pyfunc around `scoring` (it imports mlflow: import it only where a model is logged or served).
"""
