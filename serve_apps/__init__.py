"""Ray Serve applications that serve deployed mleval models over HTTP."""
