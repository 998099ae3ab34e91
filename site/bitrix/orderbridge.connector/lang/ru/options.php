<?php
/* Русские тексты options.php. */
$MESS['ORDERBRIDGE_TAB_MAIN'] = 'Подключение';
$MESS['ORDERBRIDGE_TAB_BUYERS'] = 'Покупатели';
$MESS['ORDERBRIDGE_TAB_BUYERS_TITLE'] = 'Поля покупателя по типам плательщиков';
$MESS['ORDERBRIDGE_URL'] = 'Адрес orderbridge';
$MESS['ORDERBRIDGE_SECRET'] = 'Секрет подписи (whsec_…)';
$MESS['ORDERBRIDGE_SECRET_SET'] = 'задан; оставьте пустым, чтобы не менять';
$MESS['ORDERBRIDGE_SITE_ID'] = 'Идентификатор сайта (как [site] id в orderbridge)';
$MESS['ORDERBRIDGE_TIMEOUT'] = 'Таймаут, секунд (не больше 2)';
$MESS['ORDERBRIDGE_SPOOL_DIR'] = 'Каталог очереди (лучше вне корня сайта)';
$MESS['ORDERBRIDGE_BUYERS_HINT'] = 'Коды свойств заказа. Если имя, телефон или e-mail не указаны, берётся свойство с флагом «плательщик», «телефон» или «e-mail».';
$MESS['ORDERBRIDGE_BY_FLAG'] = 'по флагу свойства';
$MESS['ORDERBRIDGE_LEGAL'] = 'Юридическое лицо';
$MESS['ORDERBRIDGE_FIELD_NAME'] = 'Имя (контактное лицо)';
$MESS['ORDERBRIDGE_FIELD_PHONE'] = 'Телефон';
$MESS['ORDERBRIDGE_FIELD_EMAIL'] = 'E-mail';
$MESS['ORDERBRIDGE_FIELD_COMPANY'] = 'Компания';
$MESS['ORDERBRIDGE_FIELD_INN'] = 'ИНН';
$MESS['ORDERBRIDGE_SAVE'] = 'Сохранить';
$MESS['ORDERBRIDGE_ERR_URL'] = 'Адрес orderbridge должен начинаться с http:// или https://.';
$MESS['ORDERBRIDGE_ERR_SECRET'] = 'Секрет подписи: whsec_ и base64 от 16 до 64 байт.';
$MESS['ORDERBRIDGE_ERR_TIMEOUT'] = 'Таймаут: больше 0 и не больше 2 секунд.';
$MESS['ORDERBRIDGE_ERR_CODE'] = 'Это не код свойства: #CODE#';
$MESS['ORDERBRIDGE_SPOOL_STATE'] = 'Очередь #DIR#: ждут отправки — #WAITING#, отклонены orderbridge — #REJECTED# (см. rejected/ и журнал событий).';
