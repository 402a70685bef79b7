"""What an operator sees: masking of caller data, logs, metrics and call history."""
