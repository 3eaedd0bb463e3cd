"""rlguard tools: demo, runners, campaign, bench harness, launch checks, recording."""
