FROM busybox
USER app:app
WORKDIR /home/app/work
COPY hello.txt .
COPY dir sub/
RUN echo made > made && mkdir madedir
