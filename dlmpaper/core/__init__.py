"""The paper's mechanics, independent of any notebook: corruption processes (§2-3), the positional
probe (§4), LLaDA's sampler and its commit strategies, the exact marginal-trap math (§4, issue (ii)) and the
statistics every table uses (bootstrap, Wilson, CI text). See docs/ARCHITECTURE.md "Layout".
"""
