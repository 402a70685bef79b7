"""The Twilio Programmable Voice front: webhooks in, TwiML out."""
