"""Embedded MuJoCo simulator, world/robot descriptions and Gazebo Harmonic bringup."""
