"""Families over decades: partnering (and a dating platform), households that form and
split, schooling, and the traits children take from their parents and peers. Each part
is a module (credsim.modules) that runs only where demography runs."""
