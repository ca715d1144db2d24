"""Telling the outside world what runs: a Prometheus ``file_sd`` file of the group's instances
(``file_sd``) and the original student client's ``multiprocessing.connection`` messages
(``original``). Decision webhooks live with the lifecycle hooks in ``vmscale.hooks``."""
