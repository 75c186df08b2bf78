"""Background jobs that chain the stages: the only place that connects library, vision, people, concepts, vlm."""
