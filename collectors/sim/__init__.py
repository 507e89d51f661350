"""The parts of the simulated fleet behind `collectors.simulator`: what it is made of (`catalog`), where
nodes stand and what their devices do (`layout`), how busy they are over time (`load`), what goes wrong
(`spells`), and the two ways a device sample is written (`wire`). Import the fleet from
`collectors.simulator`; these modules are its internals.
"""

__all__: list[str] = []
