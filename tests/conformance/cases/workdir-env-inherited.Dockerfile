FROM busybox AS base
ENV APP=/srv/app
FROM base
WORKDIR $APP/sub
COPY hello.txt ./
RUN ls -A > /tmp/ls-out && pwd > /tmp/pwd
