"""Ray Serve applications: the gateway, engine deployments, realtime sessions and their config."""
