"""The Twilio voice-webhook benchmark (``python3 bench/twilio_webhook.py``), by what each
part does: processes, signed webhooks, load phases, the store, the report, the command line."""
