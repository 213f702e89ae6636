"""Where hosted rollouts run: worker processes on this machine (`local`) or Ray tasks on a
cluster (`ray`); each runs `hud.platform.workers.rollout`."""
