"""Development and evaluation tools: the sandbox, embedded servers, the local stack, the demo.

They sit on top of the product (and of workers/, whose workers the stack runs in-process);
the product never imports them. Their dependencies come with the `local` extra:
``pip install 'notifier[local]'``.
"""
