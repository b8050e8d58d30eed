"""The ground floor: what every other package stands on, importing nothing of the project.

- ``models``: the event (CloudEvents 1.0), the request view parsers read, the reply they give;
- ``vocabulary``: the words events are told in (provider, channel, kind, state, failure),
  their one time type and the JSON values of ``details`` and ``raw``;
- ``errors``: the errors, each with a bounded ``reason``;
- ``topics``: routing patterns and how the broker matches them;
- ``display``: an event in one line, for a person.
"""
