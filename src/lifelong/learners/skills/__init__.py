"""Skills: a library of verified programs, the sandbox they run in, curricula and proposers (Voyager, Wang et al. 2023)."""
