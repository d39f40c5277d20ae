"""Defaults of the settings the clustering core takes as parameters, declared once: config.py reads them (and gives
each its help text), and the core's parameter objects default to them, so a test or a bench that builds one without
settings runs what the service runs. Plain constants: importing this module costs nothing."""

STORY_MIN_SIZE = 5  # story_min_size: fewest headlines that make a story (fixed, never scaled with the corpus)
TOPIC_MIN_SIZE = 0  # topic_min_size: the coarse cut's min_cluster_size (0: sqrt(n)/2)
MIN_SAMPLES = 5  # min_samples: HDBSCAN's core distance neighbour rank
HOLD_MARGIN = 0.35  # hold_margin: cosine a seen document must gain to leave its story in a small flow
MATCH_MIN_JACCARD = 0.2  # match_min_jaccard: overlap for a new cluster to inherit an old id
ALERT_NEW_MIN_SIZE = 6  # alert_new_min_size: fewest headlines of a story announced as new
SURGE_WINDOW_H = 6.0  # surge_window_h
SURGE_FACTOR = 3.0  # surge_factor
SURGE_MIN_HEADLINES = 5  # surge_min_headlines
