"""Fakes of the providers' APIs: aiohttp servers speaking exactly what each provider's document shows."""
