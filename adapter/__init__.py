"""genagent-adapter: supervised PSTN hand-off between Twilio or Asterisk and GenerativeAgent."""

__version__ = "0.1.0"
