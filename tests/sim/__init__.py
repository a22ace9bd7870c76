"""Tests of nbtools/sim/: the simulator, over real HTTP on loopback."""
