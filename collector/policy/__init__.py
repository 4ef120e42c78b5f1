"""Policies learned from collected episodes: models, training, checkpoints, and a runner for the
control loop. Needs torch (the `train` extra). See docs/learning.md.

    base.Policy / PolicySpec       what every policy is and declares
    act.ACTPolicy                  compact ACT (CVAE + transformer, action chunks)
    baseline.BaselinePolicy        CNN + MLP predicting the chunk directly
    train.train(TrainConfig)       training over EpisodeDataset (what `collector train` runs)
    checkpoint.Checkpoint          the one file a trained policy is, and check_compatible
    runner.PolicyRunner            reset(instruction), step(observation) -> joint targets
"""
