"""Deployment tooling: the Helm chart's generated files and the offline Helm used to check them."""
