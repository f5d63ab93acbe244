"""The report figures. Every function takes tidy pandas data and returns a Figure.

Built without pyplot on Agg canvases, inside one seaborn theme (:mod:`.theme`).
"""

from analysis.figures.balance import plot_balance
from analysis.figures.metrics import plot_comparison, plot_olrp_components, plot_pr_curves
from analysis.figures.ranking import (
    plot_iou_by_score_decile,
    plot_per_class_spearman,
    plot_score_vs_iou,
)
from analysis.figures.theme import model_colors
from analysis.figures.training import plot_training_curves

__all__ = [
    "model_colors",
    "plot_balance",
    "plot_comparison",
    "plot_iou_by_score_decile",
    "plot_olrp_components",
    "plot_per_class_spearman",
    "plot_pr_curves",
    "plot_score_vs_iou",
    "plot_training_curves",
]
