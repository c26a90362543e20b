<?php return array(
    'root' => array(
        'name' => 'solum/php-web',
        'pretty_version' => '1.0.0+no-version-set',
        'version' => '1.0.0.0',
        'reference' => null,
        'type' => 'project',
        'install_path' => __DIR__ . '/../../',
        'aliases' => array(),
        'dev' => false,
    ),
    'versions' => array(
        'solum/greeting' => array(
            'pretty_version' => '1.0.0',
            'version' => '1.0.0.0',
            'reference' => '019a79495768f4e17d65e5d50cfee5f3ede310ec',
            'type' => 'library',
            'install_path' => __DIR__ . '/../solum/greeting',
            'aliases' => array(),
            'dev_requirement' => false,
        ),
        'solum/php-web' => array(
            'pretty_version' => '1.0.0+no-version-set',
            'version' => '1.0.0.0',
            'reference' => null,
            'type' => 'project',
            'install_path' => __DIR__ . '/../../',
            'aliases' => array(),
            'dev_requirement' => false,
        ),
    ),
);
