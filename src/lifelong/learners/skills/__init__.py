"""Skills: a library of verified programs, the lessons of what actions do, the sandbox programs run in,
curricula and proposers (Voyager, Wang et al. 2023). See docs/skills.md."""
