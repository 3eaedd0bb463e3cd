"""TorchScript policy inference and the observation, action and policy-card core."""
