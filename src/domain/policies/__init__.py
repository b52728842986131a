"""Contact-policy analysis: how often to contact a customer before more contacts stop paying off.

Pure rules only, one topic a module: the request (spec), the statistics (Wilson intervals,
z-tests), frequency bands, fatigue, the weekly cap, cooldown, channels, how findings become
PolicyRecommendations (DESIGN 2.3), and the result. The aggregation over the interaction log lives
in an adapter, which hands these modules counts.

Units. A *contact* is an impression (a send). A *customer-week* is one customer in one complete
calendar week (Monday 00:00 UTC) with at least one contact; its *frequency* is its number of contacts.
A customer-week's *attributed conversions* are its conversions, capped at its contacts, so that
"conversion per contact" is a proportion.
"""

from domain.policies.result import PolicyAnalysisResult
from domain.policies.spec import ContactCaps, PolicySpec, validate_policy_spec

__all__ = ["ContactCaps", "PolicyAnalysisResult", "PolicySpec", "validate_policy_spec"]
