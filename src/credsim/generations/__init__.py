"""Generations: the measures of mobility, class persistence, access to schools, voice by
birth cohort and inequality over time, on a population that changes (demography)."""
