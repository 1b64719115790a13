"""The standing red-team suite: hostile bundles, models, inputs and HTTP clients, kill -9 during deploys,
and a short soak. Each finding of the security review (issue 12) has a case here that failed before its fix."""
