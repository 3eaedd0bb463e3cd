"""rlguard's ground floor: plain-data helpers every package may use; never imports ROS."""
