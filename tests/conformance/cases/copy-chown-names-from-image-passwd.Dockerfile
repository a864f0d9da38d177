FROM busybox
RUN echo "svc:x:2000:3000:svc:/:/bin/sh" >> /etc/passwd && echo "svcgrp:x:3000:" >> /etc/group && echo "other:x:4000:" >> /etc/group
COPY --chown=svc hello.txt /a
COPY --chown=svc:other hello.txt /b
COPY --chown=svcgrp:svcgrp hello.txt /c/
COPY --chown=2000:other dir /d/
