"""Wire formats: MLflow's scoring protocol, the Open Inference (V2) protocol, our native one."""
