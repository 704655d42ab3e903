"""credsim-dating: a dating platform that ranks profiles by their displayed credit score,
as Baihe.com did with Sesame Credit scores in 2015, as a credsim system."""

from credsim_dating.system import Dating, DatingParams

__all__ = ["Dating", "DatingParams"]
