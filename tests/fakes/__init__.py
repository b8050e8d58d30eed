"""Fakes of the providers' APIs: aiohttp servers speaking exactly what each provider's document shows
(one module per provider), served and recording their requests alike (``tests.fakes.base``)."""
