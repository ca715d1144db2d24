"""libvirt provider: domains from generated XML over qcow2 overlays of an image vmscale builds.

Modules (importing this package imports nothing from libvirt; ``provider``, ``connection`` and
``stats`` do, and are the only places in vmscale that ``import libvirt``):

    accel.py       KVM only with vmx/svm and a usable /dev/kvm, else TCG (domain type 'qemu')
    xml.py         domain XML (pure) and vmscale's <metadata> in its own namespace
    guest.py       what runs in the guest: initrd /init, busybox init, boot scripts
    image.py       `vmscale image build`: debootstrap + backend + lean boot path, cached by content hash
    seed.py        cloud-init NoCloud seed ISOs for user-supplied cloud images
    host.py        headroom: refuse launches the host cannot run
    connection.py  every libvirt call bounded in time; libvirtError -> vmscale.errors
    stats.py       CPU % from cpu_time deltas
    provider.py    LibvirtProvider (the Provider protocol)
"""
