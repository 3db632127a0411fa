"""Service level management: policies, the breach scheduler and what-if simulations."""
