"""Analysis of detectors' predictions: COCO AP, optimal LRP, aLRP / AP loss values and
ranking-versus-localisation statistics (``alrp analyze``), plus figures and reports.

Public API::

    from analysis import analyze, load_predictions, load_gt
    result = analyze("predictions.json", "instances.json")
    result.coco["AP"], result.molrp, result.to_dict()
"""

from analysis.ground_truth import GroundTruth, load_gt
from analysis.io import Predictions, load_predictions
from analysis.pipeline import AnalysisResult, analysis_document, analyze

__all__ = [
    "AnalysisResult",
    "GroundTruth",
    "Predictions",
    "analysis_document",
    "analyze",
    "load_gt",
    "load_predictions",
]
