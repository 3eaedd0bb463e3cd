"""Training, export and evaluation of rlguard navigation policies (no rclpy)."""
