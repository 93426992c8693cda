"""The build described, torch-free: the pipeline schema, overlays, the stage-kind table, the pass catalog, StageRun and the stages' contract with the chain."""
