"""Stage 2: task models trained on exported clip features, evaluated with the field's metrics."""
