FROM busybox
USER app
WORKDIR /home/app
RUN --mount=type=secret,id=s,uid=1000,mode=0440 cat /run/secrets/s > /home/app/out && stat -c "%a %u" /run/secrets/s >> /home/app/out
#conformance: args=--secret id=s,src={ctx}/secret.txt
