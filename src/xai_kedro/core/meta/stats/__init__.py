"""Statistics of the Gold layer: feature-outcome association, the (cluster) bootstrap, and
risk-coverage areas."""
