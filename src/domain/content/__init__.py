"""Content analysis: which words and phrases of creatives go with clicks and conversions.

Pure rules only, one topic a module: the request (spec), how text becomes terms (text), the rate
formulas (rates), what an analysis finds (result) and the advice drawn from it (recommendations).
The model lives in adapters/content/. The names other layers use are re-exported here.
"""

from domain.content.result import ContentAnalysisResult
from domain.content.spec import ContentSpec, validate_content_spec

__all__ = ["ContentAnalysisResult", "ContentSpec", "validate_content_spec"]
