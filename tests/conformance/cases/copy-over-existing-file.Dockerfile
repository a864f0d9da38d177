FROM busybox
RUN echo old > /f && chmod 600 /f && chown 1000 /f
COPY hello.txt /f
