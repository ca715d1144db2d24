"""Pure scaling policies. See vmscale.policy.base for the contract."""
