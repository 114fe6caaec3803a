"""TRLearner: a functional meta-learning engine and the Task Relation Learner regulariser."""

__version__ = "0.1.0"
