"""What can be done to a node, named once: the onebox's control commands, the fault
injectors' actions and the ``[injector.command]`` templates all use these names."""

KILL, PAUSE, RESUME, TERMINATE, RESTART = "kill", "pause", "resume", "terminate", "restart"
#: Every action, in the order the docs list them.
ACTIONS = (KILL, PAUSE, RESUME, TERMINATE, RESTART)
