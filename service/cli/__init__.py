"""The ``tokenrelay`` command: run the gateway, the worker or the whole stack, submit and watch
jobs from a terminal, and the operator's ``tokenrelay jobs`` actions."""
