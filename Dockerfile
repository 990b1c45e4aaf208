# concord on Apache Airflow 3.3: one image for the api-server, scheduler, dag-processor, triggerer,
# Celery workers and the sandbox services (`python -m sandbox erp|crm`).
FROM apache/airflow:3.3.2-python3.11

ENV CONCORD_HOME=/opt/concord \
    CONCORD_CONFIG=/opt/concord/concord.yaml \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/concord/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    PYTHONUNBUFFERED=1

USER root
RUN mkdir -p /opt/concord && chown airflow: /opt/concord
USER airflow
WORKDIR /opt/concord

# The package (concord, connectors) and the sandbox first, then what changes most: DAGs, mappings,
# config. The wheel ships no sandbox: the sandbox services run it from here (`python -m sandbox`).
COPY --chown=airflow: pyproject.toml README.md LICENSE constraints.txt ./
COPY --chown=airflow: concord ./concord
COPY --chown=airflow: connectors ./connectors
COPY --chown=airflow: sandbox ./sandbox
# The base image already holds Airflow with its Celery provider; pinning apache-airflow keeps pip
# from moving it, and constraints.txt (the versions `make test` ran against) pins everything else.
RUN pip install --no-cache-dir -c constraints.txt "apache-airflow==${AIRFLOW_VERSION}" ".[airflow]"

COPY --chown=airflow: dags ./dags
COPY --chown=airflow: mappings ./mappings
COPY --chown=airflow: concord.yaml ./concord.yaml
COPY --chown=airflow: identity ./identity
