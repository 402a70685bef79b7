"""A fake Asterisk (AMI over TCP on 127.0.0.1) that replays what a real Asterisk 22 sent.

    async with FakeAsterisk(handoff_timeout=1.0) as fake, Client(fake) as client:
        caller = fake.new_caller({"GA_TASK": "call_routing", "GA_IV_accountNumber": "3434"})
        caller.script_dial(DialOutcome("ANSWER", talk=0.1))
        caller.hand_off()                     # UserEvent GenerativeAgentTransfer, then hold
        ...                                   # the worker's Setvar/Redirect play the dial
        await fake.wait_for_action("Redirect", Context="genagent-agent")

``codec`` is the wire format, ``dialplan`` reads asterisk_conf/, ``model`` builds the
recorded event shapes, ``pbx`` runs the calls, ``server`` speaks AMI, and ``harness``
wraps the real panoramisk client (``Client``) for tests.
"""

from tests.fake_ami.pbx import Caller, DialOutcome
from tests.fake_ami.server import Account, FakeAsterisk, ReceivedAction

__all__ = ["Account", "Caller", "DialOutcome", "FakeAsterisk", "ReceivedAction"]
