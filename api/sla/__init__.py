"""SLA routes: policies, clocks, breaches, compliance, simulations."""
