"""libvirt provider: domains from generated XML over qcow2 overlays of an image vmscale builds."""
