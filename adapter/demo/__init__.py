"""The one-command demo and the Twilio call simulator it (and the tests) use."""
